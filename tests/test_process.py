"""pid_alive: what the tracking module and the server use to tell a dead process from a live one."""

import os
import subprocess
import sys

from fmnist.process import pid_alive


def test_pid_alive_live_zombie_and_gone():
    assert pid_alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(p.pid)
    p.wait()
    assert not pid_alive(p.pid)
