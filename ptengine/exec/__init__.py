"""execve() (fs/binfmt_elf.c, fs/exec.c): binfmt_elf.py maps the program; layout.py sets up
the stack, the vDSO and the gate (arch/x86/entry/vdso/vma.c)."""
