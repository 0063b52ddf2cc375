"""A function's MemorySize held as Lambda holds it: its bootstrap runs in a memory cgroup of its
own (cgroup v1, under the rehearsal's own cgroup) limited to MemorySize, so a function that
grows past it is killed by the kernel, as Lambda stops it."""

import os
import subprocess

ROOT = "/sys/fs/cgroup/memory"


def own_cgroup():
    """The memory cgroup directory this process is in, or None without a writable v1 memory
    controller. Under `ip netns exec`, whose fresh /sys has no cgroup mounts, the hierarchy is
    mounted again inside that command's own mount namespace (it goes away with it)."""
    try:
        with open("/proc/self/cgroup") as file:
            path = next(line.rstrip("\n").split(":", 2)[2] for line in file
                        if "memory" in line.split(":", 2)[1].split(","))
    except (OSError, StopIteration):
        return None
    root = ROOT
    if not os.path.isdir(ROOT):
        # No memory hierarchy mounted here at all: this namespace's own fresh /sys.
        root = "/run/kedaform-memory-cgroup"
        os.makedirs(root, exist_ok=True)
        if not os.path.ismount(root) and subprocess.run(
                ["mount", "-t", "cgroup", "-o", "memory", "kedaform-memory", root], capture_output=True).returncode != 0:
            return None
    directory = root + path
    return directory if os.access(directory, os.W_OK) else None


class MemoryLimit:
    """A memory cgroup named `name` under `parent`, limited to `mib` MiB."""

    def __init__(self, parent, name, mib):
        self.directory = os.path.join(parent, name)
        os.makedirs(self.directory, exist_ok=True)
        self._write("memory.limit_in_bytes", mib * 1024 * 1024)

    def _write(self, name, value):
        with open(os.path.join(self.directory, name), "w") as file:
            file.write(str(value))

    def command(self, argv):
        """`argv` run inside the cgroup: a shell joins it, then becomes `argv`."""
        return ["/bin/sh", "-c", f'echo $$ > {self.directory}/cgroup.procs && exec "$@"', "memory-limit", *argv]

    def oom_kills(self):
        """How many processes the kernel killed for passing the limit."""
        with open(os.path.join(self.directory, "memory.oom_control")) as file:
            for line in file:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def remove(self):
        """Removes the cgroup once its processes are gone."""
        try:
            os.rmdir(self.directory)
        except OSError:
            pass
