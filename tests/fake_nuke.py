"""A stand-in ``nuke`` module for tests: records the nodes, knobs, menus and messages a plug-in makes.

Only the parts of Nuke's Python API the bridge uses exist; a knob a node class does not
have raises ``NameError`` as Nuke does, so a misspelt knob fails a test.  Like Nuke, it
insists that the script is changed on the main thread: node creation, knob changes,
``reload`` and ``nuke.message`` from another thread raise ``RuntimeError``; such threads
must go through ``executeInMainThread``, whose calls queue until the test runs them
with :meth:`FakeNuke.run_main_thread_queue` (the stand-in for Nuke's event loop).
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from typing import Any

# The knobs each node class starts with (name → default value).  Button knobs default to None.
CLASS_KNOBS: dict[str, dict[str, Any]] = {
    "Read": {
        "file": "",
        "first": 1,
        "last": 1,
        "origfirst": 1,
        "origlast": 1,
        "colorspace": "default (linear)",
        "premultiplied": False,
        "raw": False,
        "on_error": "error",
        "reload": None,
    },
    "Write": {"file": "", "colorspace": "default (linear)", "channels": "rgb", "file_type": ""},
    "Shuffle": {
        "in": "rgba", "in2": "none", "out": "rgba", "red": "red", "green": "green", "blue": "blue", "alpha": "alpha"
    },
    "Grade": {"blackpoint": 0.0, "whitepoint": 1.0, "multiply": 1.0, "white_clamp": False, "black_clamp": True},
    "Expression": {"expr0": "", "expr1": "", "expr2": "", "expr3": "", "channel0": "rgba"},
    "Merge2": {"operation": "over", "mix": 1.0},
    "Roto": {},
}
COMMON_KNOBS = {"name": "", "label": "", "xpos": 0, "ypos": 0, "disable": False}


class Knob:
    def __init__(self, name: str, label: str = "", value: Any = None, owner: FakeNuke | None = None) -> None:
        self._name = name
        self._label = label or name
        self._value = value
        self._enabled = True
        self.owner = owner
        self.executed = 0
        self.history: list[Any] = []

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self) -> Any:
        return self._value

    getValue = value

    def evaluate(self) -> Any:
        return self._value

    def setValue(self, value: Any) -> bool:
        if self.owner is not None:
            self.owner.require_main_thread(f"setting knob {self._name}")
        self._value = value
        self.history.append(value)
        return True

    def execute(self) -> None:
        if self.owner is not None:
            self.owner.require_main_thread(f"executing knob {self._name}")
        self.executed += 1

    def setEnabled(self, enabled: bool) -> None:
        if self.owner is not None:
            self.owner.require_main_thread(f"enabling knob {self._name}")
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        return self._enabled


class Tab_Knob(Knob):
    def __init__(self, name: str, label: str = "") -> None:
        super().__init__(name, label)


class Text_Knob(Knob):
    def __init__(self, name: str, label: str = "", text: str = "") -> None:
        super().__init__(name, label, text)


class String_Knob(Knob):
    def __init__(self, name: str, label: str = "", text: str = "") -> None:
        super().__init__(name, label, text)


class PyScript_Knob(Knob):
    def __init__(self, name: str, label: str = "", script: str = "") -> None:
        super().__init__(name, label, None)
        self.script = script


class Node:
    def __init__(self, owner: FakeNuke, node_class: str, name: str) -> None:
        self.owner = owner
        self._class = node_class
        self._knobs: dict[str, Knob] = {}
        for knob_name, default in {**COMMON_KNOBS, **CLASS_KNOBS.get(node_class, {})}.items():
            self._knobs[knob_name] = Knob(knob_name, value=default, owner=owner)
        self._knobs["name"]._value = name
        self._inputs: dict[int, Node | None] = {}
        self.selected = False

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        self.owner.require_main_thread(f"adding knob {knob.name()}")
        knob.owner = self.owner
        self._knobs[knob.name()] = knob

    def setInput(self, index: int, node: Node | None) -> bool:
        self.owner.require_main_thread("connecting nodes")
        self._inputs[index] = node
        return True

    def input(self, index: int) -> Node | None:
        return self._inputs.get(index)

    def xpos(self) -> int:
        return int(self._knobs["xpos"].value())

    def ypos(self) -> int:
        return int(self._knobs["ypos"].value())

    def setXYpos(self, x: int, y: int) -> None:
        self._knobs["xpos"].setValue(int(x))
        self._knobs["ypos"].setValue(int(y))

    def setSelected(self, selected: bool) -> None:
        self.selected = bool(selected)

    def __repr__(self) -> str:
        return f"<{self._class} {self.name()}>"


class _Nodes:
    def __init__(self, owner: FakeNuke) -> None:
        self._owner = owner

    def __getattr__(self, node_class: str) -> Callable[..., Node]:
        if node_class.startswith("_"):
            raise AttributeError(node_class)
        owner = self._owner

        def construct(**knobs: Any) -> Node:
            return owner.create(node_class, **knobs)

        return construct


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items: dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, **_: Any) -> Menu:
        menu = self.items.get(name)
        if not isinstance(menu, Menu):
            menu = self.items[name] = Menu(name)
        return menu

    def addCommand(self, name: str, command: Any = None, *_: Any, **__: Any) -> None:
        self.items[name] = command

    def findItem(self, name: str) -> Any:
        return self.items.get(name)


class Panel:
    """``nuke.Panel``: the answers come from ``FakeNuke.panel_answers``; ``show`` returns ``panel_ok``."""

    def __init__(self, owner: FakeNuke, title: str = "") -> None:
        self.owner = owner
        self.title = title
        self.fields: dict[str, Any] = {}
        owner.panels.append(self)

    def _add(self, name: str, value: Any) -> bool:
        self.fields[name] = value
        return True

    def addSingleLineInput(self, name: str, value: Any) -> bool:
        return self._add(name, value)

    def addEnumerationPulldown(self, name: str, value: str) -> bool:
        return self._add(name, value)

    def addBooleanCheckBox(self, name: str, value: Any) -> bool:
        return self._add(name, value)

    def show(self) -> int:
        self.owner.require_main_thread("showing a panel")
        return 1 if self.owner.panel_ok else 0

    def value(self, name: str) -> Any:
        if name not in self.fields:
            return None
        if name in self.owner.panel_answers:
            return self.owner.panel_answers[name]
        default = self.fields[name]
        return default.split()[0] if isinstance(default, str) and name in self._pulldowns() else default

    def _pulldowns(self) -> set[str]:
        pulldowns = ("Plate", "Preset", "Guide kind", "Run on", "Subject prior", "Clean plate")
        return {n for n in self.fields if n in pulldowns}


class ProgressTask:
    def __init__(self, owner: FakeNuke, title: str) -> None:
        self.title = title
        self.progress: list[int] = []
        self.messages: list[str] = []
        self.cancelled = False
        owner.tasks.append(self)

    def setProgress(self, percent: int) -> None:
        self.progress.append(int(percent))

    def setMessage(self, message: str) -> None:
        self.messages.append(message)

    def isCancelled(self) -> bool:
        return self.cancelled


class FakeNuke(types.ModuleType):
    """The module object itself; its state is inspected by the tests."""

    REPLACE = 1

    def __init__(self) -> None:
        super().__init__("nuke")
        self.main_thread = threading.get_ident()
        self.created: list[Node] = []
        self.messages: list[str] = []
        self.panels: list[Panel] = []
        self.panel_answers: dict[str, Any] = {}
        self.panel_ok = True
        self.tasks: list[ProgressTask] = []
        self.this_node: Node | None = None  # what nuke.thisNode() answers (a test sets it)
        self.layer_names: dict[str, list[str]] = {}
        self.main_queue: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.queued_calls: list[str] = []
        self._lock = threading.Lock()
        self._menus: dict[str, Menu] = {}
        self.nodes = _Nodes(self)
        self.Tab_Knob = Tab_Knob
        self.Text_Knob = Text_Knob
        self.String_Knob = String_Knob
        self.PyScript_Knob = PyScript_Knob

    # -- thread discipline ---------------------------------------------------------------

    def require_main_thread(self, what: str) -> None:
        if threading.get_ident() != self.main_thread:
            raise RuntimeError(f"fake nuke: {what} off the main thread (use nuke.executeInMainThread)")

    def executeInMainThread(self, call: Callable[..., Any], args: Any = (), kwargs: Any = None) -> None:
        args = args if isinstance(args, tuple) else (args,)
        with self._lock:
            self.main_queue.append((call, args, dict(kwargs or {})))
            self.queued_calls.append(getattr(call, "__name__", repr(call)))

    def run_main_thread_queue(self) -> int:
        """Run what background threads queued, as Nuke's event loop would; returns how many calls ran."""
        self.require_main_thread("draining the queue")
        with self._lock:
            pending, self.main_queue = self.main_queue, []
        for call, args, kwargs in pending:
            call(*args, **kwargs)
        return len(pending)

    # -- the API ---------------------------------------------------------------------------

    def create(self, node_class: str, **knobs: Any) -> Node:
        self.require_main_thread(f"creating a {node_class}")
        count = sum(1 for n in self.created if n.Class() == node_class) + 1
        node = Node(self, node_class, f"{node_class}{count}")
        for name, value in knobs.items():
            node[name].setValue(value)
        self.created.append(node)
        return node

    def toNode(self, name: str) -> Node | None:
        return next((n for n in self.created if n.name() == name), None)

    def thisNode(self) -> Node:
        if self.this_node is None:
            raise ValueError("nuke.thisNode() outside a knob callback")
        return self.this_node

    def allNodes(self, node_class: str | None = None) -> list[Node]:
        return [n for n in self.created if node_class is None or n.Class() == node_class]

    def selectedNodes(self, node_class: str | None = None) -> list[Node]:
        return [n for n in self.allNodes(node_class) if n.selected]

    def selectedNode(self) -> Node:
        chosen = self.selectedNodes()
        if not chosen:
            raise ValueError("no node selected")
        return chosen[-1]

    def filename(self, node: Node, mode: int = 0) -> str | None:
        value = node.knob("file")
        return str(value.value()) if value is not None and value.value() else None

    def layers(self, node: Node | None = None) -> list[str]:
        return ["rgb", "rgba", "alpha", *self.layer_names]

    def Layer(self, name: str, channels: list[str]) -> None:
        self.layer_names[name] = list(channels)

    def menu(self, name: str) -> Menu:
        return self._menus.setdefault(name, Menu(name))

    def message(self, text: str) -> None:
        self.require_main_thread("nuke.message")
        self.messages.append(text)

    def Panel(self, title: str = "", width: int = 0) -> Panel:  # Nuke's name
        return Panel(self, title)

    def ProgressTask(self, title: str) -> ProgressTask:  # Nuke's name
        return ProgressTask(self, title)

    # -- helpers for tests -----------------------------------------------------------------

    def of_class(self, node_class: str) -> list[Node]:
        return self.allNodes(node_class)

    def select(self, *nodes: Node) -> None:
        for node in self.created:
            node.selected = False
        for node in nodes:
            node.selected = True


def install() -> FakeNuke:
    """A fresh fake in ``sys.modules['nuke']`` (modules that imported the previous one are reloaded by the caller)."""
    fake = FakeNuke()
    sys.modules["nuke"] = fake
    return fake
