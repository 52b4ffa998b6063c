"""One address space: the mm_struct and the syscalls over it, one module per kernel file."""
