"""/proc/PID/maps read one read() at a time, as the kernel's seq_file serves it
(fs/seq_file.c, fs/proc/task_mmu.c:m_start()).

A program that reads its own maps and maps memory between two reads sees the first part
of one state and the rest of another. The kernel (fs/seq_file.c:seq_read_iter() over
fs/proc/task_mmu.c's m_start()/m_next()/show_map()) works like this, and SeqMaps does
the same over a simulated MM; tests/trace/test_seqmaps.py checks it read by read against
the host kernel with mappings changed between reads:

  * text is made a whole line (one VMA) at a time into a buffer of one page, doubled
    while a single line does not fit; a line fits if it leaves the buffer not full;
  * a read() first hands out what the previous one left in the buffer; if that was all
    it could take, it returns; otherwise it adds lines while the buffer holds less than
    the rest of the read's size (and they fit), returns what fits, and keeps the rest;
  * the position between reads is an address, the end of the last VMA put in the buffer:
    the next line is the first VMA ending above it *now* (a VMA that grew down across
    that address is printed again from its new start; one that went away is skipped).
    After the last VMA comes the gate area ([vsyscall]), then the end.
"""
from ..constants import PAGE_SIZE

END = -1           # the position after the gate line: everything has been read


class SeqMaps:
    """One open /proc/PID/maps of `mm` (a file description: its own position)."""

    def __init__(self, mm):
        self.mm = mm
        self.pos = 0
        self.pending = ""
        self.size = PAGE_SIZE

    def lseek0(self):
        """lseek(fd, 0, SEEK_SET): seq_lseek() starts over."""
        self.pos, self.pending = 0, ""

    def _records(self):
        """(line, position after it) from the current position on, in the mm's state now."""
        if self.pos == END:
            return
        vmas = self.mm.vmas()
        lines = self.mm.maps().splitlines(True)
        # The first VMA ending above pos (get_next_vma()); vmas are in address order.
        lo, hi = 0, len(vmas)
        while lo < hi:
            mid = (lo + hi) // 2
            if vmas[mid].end > self.pos:
                hi = mid
            else:
                lo = mid + 1
        for k in range(lo, len(vmas)):
            yield lines[k], vmas[k].end
        for line in lines[len(vmas):]:          # the gate area, if the mm has one
            yield line, END
        yield None, END

    def read(self, count):
        """The text one read(fd, buf, count) returns."""
        out = ""
        if self.pending:
            out, self.pending = self.pending[:count], self.pending[count:]
            if self.pending or len(out) == count:
                return out
        room = count - len(out)
        records = self._records()
        buf = ""
        for line, pos in records:
            if line is None:
                self.pos = END
                break
            if not buf:
                while len(line) >= self.size:   # the first record always goes in
                    self.size *= 2
            elif len(buf) >= room or len(buf) + len(line) >= self.size:
                break
            buf += line
            self.pos = pos
        out += buf[:room]
        self.pending = buf[room:]
        return out
