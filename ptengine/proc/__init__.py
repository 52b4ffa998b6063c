"""/proc text (fs/proc/task_mmu.c, fs/proc/array.c): text.py renders and parses maps,
smaps and status as the kernel writes them."""
