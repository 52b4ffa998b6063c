"""One address space (include/linux/mm_types.h) and its syscalls, a module per kernel file."""
