"""A user's own task class (``task.kind: package.module:ClassName``) and the ``task`` section's kinds.

The class subclasses :class:`~raysweep.tasks.protocol.Task`; its options (``task.options``) are validated against
its ``Options`` pydantic model when the config loads, and the module is imported then too (the working directory
is importable), so a typo fails in one line before any work. Workers import the module the same way: run from the
directory that holds it, or put it on ``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from raysweep.tasks.files import FilesTaskConfig
from raysweep.tasks.generalpoints import TaskConfig
from raysweep.tasks.protocol import Task, import_object

KINDS = ("generalpoints", "files")
"""The built-in kinds; anything with a ':' is a user's class."""


class ClassTaskConfig(BaseModel):
    """A task implemented by a user's Python class (a :class:`~raysweep.tasks.protocol.Task` subclass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(..., description="package.module:ClassName of a raysweep.tasks.protocol.Task subclass.")
    options: dict[str, Any] = Field(default_factory=dict, description="The class's options, validated against its "
                                    "Options pydantic model.")

    @model_validator(mode="after")
    def _importable(self):
        self.make()
        return self

    def task_class(self) -> type[Task]:
        cls = import_object(self.kind, "task.kind")
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ValueError(f"task.kind: {self.kind} is not a subclass of raysweep.tasks.protocol.Task")
        return cls

    def make(self) -> Task:
        cls = self.task_class()
        if cls.Options is None:
            if self.options:
                raise ValueError(f"task.options: {self.kind} takes no options (it has no Options model)")
            return cls(None)
        try:
            options = cls.Options.model_validate(self.options)
        except ValidationError as exc:
            lines = [f"task.options.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                     if e["loc"] else e["msg"] for e in exc.errors()]
            raise ValueError("; ".join(lines)) from None
        return cls(options)

    def identity(self, exclude: set[str] = frozenset()) -> dict:
        task = self.make()
        options = task.options.model_dump(mode="json") if task.options is not None else {}
        return {"kind": self.kind, "options": options, **task.identity()}


def _kind(value: Any) -> str:
    kind = value.get("kind", "generalpoints") if isinstance(value, dict) else getattr(value, "kind", "generalpoints")
    if kind in KINDS:
        return str(kind)
    return "class" if isinstance(kind, str) and ":" in kind else "unknown"


TaskSection = Annotated[
    Union[Annotated[TaskConfig, Tag("generalpoints")], Annotated[FilesTaskConfig, Tag("files")],
          Annotated[ClassTaskConfig, Tag("class")]],
    Discriminator(_kind, custom_error_type="task_kind",
                  custom_error_message="task.kind must be generalpoints (the default), files, or "
                                       "package.module:ClassName of your own Task class"),
]
"""The ``task`` section: GeneralPoints (no ``kind``, or ``kind: generalpoints``), ``files``, or a user's class."""

TAGS = ("generalpoints", "files", "class")
