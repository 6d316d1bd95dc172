"""The job's commands run with their output streamed line by line, stopped when the call's time is up."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from typing import Callable, Optional

from benchmarks.lease.progress import log, stamp


def stream(command: list[str], stop_at: float, on_line: Callable[[str], None] = lambda line: None) -> str:
    """Run ``command``, print its output line by line with timestamps, stop it at
    ``stop_at`` (``time.time()``); return "done", "failed (exit N)" or "stopped for time"."""
    return stream_all([command], stop_at, on_line)


def stream_all(commands: list[list[str]], stop_at: float, on_line: Callable[[str], None] = lambda line: None) -> str:
    """:func:`stream` for commands run side by side, each line marked with its command's number."""
    for command in commands:
        log("$ " + " ".join(command))
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0) for c in commands]
    lines: queue.Queue[tuple[int, Optional[str]]] = queue.Queue()

    def read(number: int, process: subprocess.Popen) -> None:
        buffer = b""
        for block in iter(lambda: process.stdout.read(4096), b""):
            # progress bars end their updates with \r: each update becomes a line
            *complete, buffer = re.split(rb"[\r\n]", buffer + block)
            for line in complete:
                if line.strip():
                    lines.put((number, line.decode(errors="replace")))
        if buffer.strip():
            lines.put((number, buffer.decode(errors="replace")))
        lines.put((number, None))

    for number, process in enumerate(processes):
        threading.Thread(target=read, args=(number, process), daemon=True).start()
    running, stopped = len(processes), False
    while running:
        try:
            number, line = lines.get(timeout=1.0)
        except queue.Empty:
            number, line = 0, ""
        if line is None:
            running -= 1
        elif line:
            mark = f"[{number + 1}/{len(processes)}] " if len(processes) > 1 else ""
            print(f"{stamp()}   {mark}{line}", flush=True)
            on_line(line)
        if not stopped and time.time() > stop_at:
            log("the call's time is nearly up: stopping (finished work stays in the work folder)")
            for process in processes:
                process.terminate()
            stopped = True
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=20))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    if stopped:
        return "stopped for time"
    failed = [code for code in codes if code]
    return f"failed (exit {failed[0]})" if failed else "done"
