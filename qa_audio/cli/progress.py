"""The progress bar of ``analyze``: a :class:`qa_audio.schema.ProgressHook` drawn with rich on stderr."""

from __future__ import annotations

import os
import sys
from types import TracebackType

from qa_audio.schema import ProgressHook, no_progress

STEP_NAMES = {"decode": "解码", "diarize": "说话人分离", "asr": "语音识别", "segmentation": "语音分段",
              "embeddings": "声纹提取", "clustering": "说话人聚类"}


class StageProgress:
    """One bar per step; silent when stderr is not a terminal (a log file, CI) or when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty() and not os.environ.get("CI")
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> ProgressHook:
        if not self.enabled:
            return no_progress
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                             console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        return self._update

    def _update(self, step: str, *, completed: float, total: float) -> None:
        assert self._bar is not None
        if step not in self._tasks:
            self._tasks[step] = self._bar.add_task(STEP_NAMES.get(step, step), total=total)
        self._bar.update(self._tasks[step], completed=completed, total=total)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if self._bar is not None:
            self._bar.__exit__(kind, value, traceback)
        return False
