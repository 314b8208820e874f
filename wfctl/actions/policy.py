"""Which ``module:function`` action references a definition may run: the operator's allow-list.

A definition names its actions; the operator decides which Python code that may reach.
Registered actions (built-ins, plugins from the ``wfctl.actions`` entry points) and stubs
always run; a ``module:function`` reference runs only when its module is under a prefix the
operator allowed, with ``--allow-module PREFIX``, ``$WFCTL_ALLOW_MODULES`` (comma-separated)
or ``allow_modules`` in the data directory's ``wfctl.json``. A prefix matches whole module
path components: ``mypkg`` allows ``mypkg:f`` and ``mypkg.sub:f``, not ``mypkgevil:f``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..errors import ActionError, InputError

ENV_VAR = "WFCTL_ALLOW_MODULES"
_PREFIX = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ActionNotAllowed(ActionError):
    """A ``module:function`` reference whose module the operator did not allow."""


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    """The module prefixes whose functions definitions may call (none by default)."""

    modules: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, options: Iterable[str] = (), env: Mapping[str, str] | None = None,
                setting: Iterable[str] | None = None) -> "ActionPolicy":
        """The union of ``--allow-module`` ``options``, ``$WFCTL_ALLOW_MODULES`` in ``env``
        (default ``os.environ``) and the data directory's ``allow_modules`` ``setting``.

        InputError names the source of a prefix that is not a dotted module path.
        """
        env = os.environ if env is None else env
        found: list[str] = []
        sources = [("--allow-module", list(options or ())),
                   (ENV_VAR, [p.strip() for p in env.get(ENV_VAR, "").split(",") if p.strip()]),
                   ("wfctl.json allow_modules", list(setting or ()))]
        for where, prefixes in sources:
            for prefix in prefixes:
                if not isinstance(prefix, str) or not _PREFIX.match(prefix):
                    raise InputError(f"{where}: invalid module prefix {prefix!r} "
                                     "(expected a dotted module path such as mypkg or mypkg.actions)")
                found.append(prefix)
        return cls(tuple(dict.fromkeys(found)))

    def allows(self, ref: str) -> bool:
        """True when the module of ``module:function`` reference ``ref`` is under an allowed prefix."""
        module = ref.partition(":")[0]
        return any(module == p or module.startswith(p + ".") for p in self.modules)

    def check(self, ref: str) -> None:
        """Raise ActionNotAllowed (with how to allow it) unless ``ref`` is allowed."""
        if not self.allows(ref):
            raise ActionNotAllowed(not_allowed_message(ref))


def not_allowed_message(ref: str) -> str:
    """``action type 'shutil:rmtree' is not allowed: ...`` with the option that allows it."""
    module = ref.partition(":")[0]
    return (f"action type '{ref}' is not allowed: definitions may call Python functions only from modules "
            f"the operator allows; allow it with --allow-module {module} (or {ENV_VAR}, or allow_modules "
            "in wfctl.json)")
