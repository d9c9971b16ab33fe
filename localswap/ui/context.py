"""What every panel needs: the workspace, the runner, and the shared snapshot cache."""
from __future__ import annotations

from dataclasses import dataclass, field

from localswap.jobs.runner import Runner
from localswap.jobs.snapshot import Snapshots
from localswap.jobs.uploads import UploadSettings
from localswap.workspace import Workspace


@dataclass
class Context:
    workspace: Workspace
    runner: Runner
    snapshots: Snapshots
    uploads: UploadSettings = field(default_factory=UploadSettings)
    poll: float = 2.0           # seconds between snapshot polls in the browser
    viewers: frozenset = frozenset()   # user names that may watch but not change anything
    share: dict | None = None          # the public link's state (ui/share.py), None: off

    @property
    def store(self):
        return self.runner.store


def human_error(exc: Exception) -> str:
    """A sentence for the page: UserErrors say what to fix; anything else is named briefly."""
    from localswap.errors import UserError, in_words
    if isinstance(exc, UserError):
        return in_words(exc)
    return f"Something went wrong ({in_words(exc)}). The server log has details."
