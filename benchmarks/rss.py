"""Peak RSS of any command, in a process of its own: ``python -m benchmarks.rss -- python -m tfvgg.train ...``.

Runs the command, passes its output through, then prints one line: its peak resident set size (the
largest of the process and any of its children, from ``wait4``'s ``ru_maxrss``) and its wall time.
Exits with the command's exit code.
"""
import os
import subprocess
import sys
import time


def peak_rss(command):
    """(exit code, peak RSS bytes, seconds) of ``command`` (a list of arguments) run to the end."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss * 1024, time.perf_counter() - start   # Linux: KiB


def main(argv):
    command = argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m benchmarks.rss -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    code, peak, seconds = peak_rss(command)
    print(f"peak RSS {peak / 2 ** 20:,.0f} MiB, {seconds:.1f} s, exit {code}: {' '.join(command)}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
