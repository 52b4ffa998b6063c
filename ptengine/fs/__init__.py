"""Files and the machine they live on (mm/filemap.c, mm/shmem.c, mm/memory.c, mm/rmap.c).

files.py: inodes, open files, the page cache; machine.py: frames, the host profile, the
reverse map of mm/memory.c:unmap_mapping_range()."""
