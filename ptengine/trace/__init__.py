"""Real programs as input: address-space listings, strace logs, record and replay
(mirrors no kernel file).

    maps     /proc/PID/maps, smaps and gdb `info proc mappings` text -> records -> an MM
    strace   parse an `strace -f -y` log into address-space calls
    record   run a program under strace with ASLR off
    replay   run a parsed log on the simulator and check every result
    rewrite  turn a log's PROT_NONE guard idioms into guard markers
"""
