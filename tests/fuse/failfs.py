#!/usr/bin/env python3
"""failfs: a FUSE passthrough file system whose fsync fails on demand.

    failfs.py BACKING MOUNTPOINT TRIGGER
    failfs.py --check

Mirrors the directory BACKING at MOUNTPOINT (in the foreground, until
SIGTERM or an unmount). While the file TRIGGER exists (it should lie outside
the mount), every fsync and fdatasync of a file (FUSE fsync) and of a
directory (FUSE fsyncdir) fails with EIO and flushes nothing; otherwise they
flush the backing file or directory. Everything else passes through.

Used by tests/faults.rs to make `sluice serve` see an fsync error in
`durability = "disk"` mode. Covers what sluice does on its data directory:
SQLite databases (WAL, whose `-shm` file is mapped MAP_SHARED), flock of a
lock file, create/rename/unlink/mkdir, ftruncate, posix_fallocate, and
shared writable mappings of segment files.

- No direct_io: the kernel page cache serves reads and writes, so
  MAP_SHARED writable mappings (and MADV_POPULATE_WRITE) work; dirty mapped
  pages reach the backing file as FUSE writes, at the latest when fsync is
  called (the kernel writes them back before it sends the fsync request).
- flock and POSIX locks are not implemented here, so the kernel keeps them
  locally (correct for a single-host mount).
- fallocate: fusepy 3.0.1 has no fallocate operation, so the kernel gets
  ENOSYS, answers EOPNOTSUPP, and glibc's posix_fallocate falls back to
  writing a zero byte into each block, which this file system stores.

Needs fusepy on libfuse 2 (Debian: `apt-get install python3-fusepy`, module
`fusepy`; from PyPI the module is `fuse`). Mounting needs root (libfuse then
calls mount(2) itself; no fusermount).

`--check` only loads fusepy and libfuse, and says which, for a test to
tell a missing package from a failed mount.

On start it prints `failfs: mounted` to stdout once the kernel has set up the
mount. Every flush is logged on stderr, one line each: `failfs: ok OP PATH`
or, when it was failed, `failfs: EIO OP PATH` (OP is fsync, fdatasync or
fsyncdir; PATH is relative to the mount).
"""

import errno
import os
import sys
import threading

try:
    import fusepy as fuse  # Debian's python3-fusepy
except ImportError:  # pragma: no cover - PyPI's fusepy
    import fuse


class FailFs(fuse.Operations):
    """Passthrough to `backing`; fsync fails while `trigger` exists."""

    use_ns = True

    def __init__(self, backing, trigger):
        self.backing = os.path.realpath(backing)
        self.trigger = trigger
        self._counter_lock = threading.Lock()
        self.injected = 0

    # --- helpers -------------------------------------------------------

    def _full(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _sync(self, what, path, fh, datasync):
        """Flushes `fh`, or fails with EIO while the trigger exists; logs either."""
        if os.path.lexists(self.trigger):
            with self._counter_lock:
                self.injected += 1
            print(f"failfs: EIO {what} {path}", file=sys.stderr, flush=True)
            raise fuse.FuseOSError(errno.EIO)
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        print(f"failfs: ok {what} {path}", file=sys.stderr, flush=True)

    # --- lifecycle -----------------------------------------------------

    def init(self, path):
        print("failfs: mounted", flush=True)

    def destroy(self, path):
        print(f"failfs: unmounted after {self.injected} injected errors", file=sys.stderr, flush=True)

    # --- metadata ------------------------------------------------------

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._full(path))
        return {
            "st_mode": st.st_mode,
            "st_ino": st.st_ino,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_blocks": st.st_blocks,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def access(self, path, amode):
        if not os.access(self._full(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self._full(path), follow_symlinks=False)
        else:
            os.utime(self._full(path), ns=times, follow_symlinks=False)

    def statfs(self, path):
        sv = os.statvfs(self._full(path))
        return {
            key: getattr(sv, key)
            for key in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    # --- names ---------------------------------------------------------

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def link(self, target, source):
        os.link(self._full(source), self._full(target))

    def symlink(self, target, source):
        os.symlink(source, self._full(target))

    def readlink(self, path):
        return os.readlink(self._full(path))

    def mknod(self, path, mode, dev):
        os.mknod(self._full(path), mode, dev)

    # --- files ---------------------------------------------------------

    def create(self, path, mode, fi=None):
        return os.open(self._full(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)

    def open(self, path, flags):
        # O_APPEND is the kernel's business (it sends absolute offsets).
        return os.open(self._full(path), flags & ~os.O_APPEND)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        self._sync("fdatasync" if datasync else "fsync", path, fh, datasync)

    # --- directories ---------------------------------------------------

    def opendir(self, path):
        return os.open(self._full(path), os.O_RDONLY | os.O_DIRECTORY)

    def releasedir(self, path, fh):
        os.close(fh)

    def fsyncdir(self, path, datasync, fh):
        self._sync("fsyncdir", path, fh, datasync)


def main():
    if sys.argv[1:] == ["--check"]:
        # fusepy loaded libfuse at import: say which, and mount nothing.
        print(f"failfs: fusepy {fuse.__file__} on {getattr(fuse, '_libfuse_path', 'libfuse')}")
        return
    if len(sys.argv) != 4:
        print("usage: failfs.py BACKING MOUNTPOINT TRIGGER | --check", file=sys.stderr)
        sys.exit(2)
    backing, mountpoint, trigger = sys.argv[1:]
    fuse.FUSE(
        FailFs(backing, trigger),
        mountpoint,
        foreground=True,
        nothreads=False,
        fsname="failfs",
        subtype="failfs",
        use_ino=True,
        big_writes=True,
        max_write=131072,
    )


if __name__ == "__main__":
    main()
