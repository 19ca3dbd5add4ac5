"""Regions an operator drew, moved or deleted on the dashboard, kept in a state file beside
the config (``plant.toml`` → ``plant.state.json``), never in the user's TOML.

The file holds changes, not a copy: regions set from the dashboard (added, or replacing one of
the same name) and names deleted, per camera. At start they are laid over the config's regions,
so a region added to the TOML later still appears, and one the dashboard deleted stays deleted.
Every change is written whole to a temporary file in the same directory, flushed to disk and
renamed over the old one: a crash leaves the old file or the new one, never half of either.
A file that cannot be read stops the start with an error naming it and the field (it is not
overwritten: nothing the operator drew is lost).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sensorlink.config_monitoring import FieldError, RegionConfig, check_region
from sensorlink.errors import ConfigError

VERSION = 1


def state_path_for(config_path: str | Path) -> Path:
    path = Path(config_path)
    return path.with_name(f"{path.stem}.state.json")


class RegionStore:
    def __init__(self, path: str | Path | None) -> None:
        #: None: nowhere to keep changes (the demo); they last as long as the service
        self.path = Path(path) if path is not None else None
        self.set: dict[str, dict[str, RegionConfig]] = {}
        self.deleted: dict[str, list[str]] = {}
        self.writes = 0

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        source = str(self.path)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read the dashboard's region changes: {exc}",
                              source=source) from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ConfigError(f"expected a sensorlink state file of version {VERSION}",
                              source=source, field="version")
        for sensor, regions in (data.get("set") or {}).items():
            for name, raw in (regions or {}).items():
                try:
                    region = check_region(raw)
                    if region.name != name:
                        raise FieldError("name", f"stored under {name!r}")
                except FieldError as exc:
                    raise ConfigError(str(exc), source=source, sensor=sensor,
                                      field=f"set.{sensor}.{name}.{exc.key}") from exc
                self.set.setdefault(sensor, {})[name] = region
        for sensor, names in (data.get("deleted") or {}).items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError("expected a list of region names", source=source,
                                  sensor=sensor, field=f"deleted.{sensor}")
            self.deleted[sensor] = list(names)

    def apply(self, sensor: str, configured: tuple[RegionConfig, ...]) -> list[RegionConfig]:
        """The camera's regions: the config's, minus those deleted, with those set on top."""
        gone = set(self.deleted.get(sensor, ()))
        changed = self.set.get(sensor, {})
        out = [changed.get(r.name, r) for r in configured if r.name not in gone]
        names = {r.name for r in out}
        return out + [r for name, r in changed.items() if name not in names and name not in gone]

    def record_set(self, sensor: str, region: RegionConfig) -> None:
        """Keep a region the dashboard set; OSError (and nothing changed) if it cannot be saved."""
        changed = {s: dict(regions) for s, regions in self.set.items()}
        changed.setdefault(sensor, {})[region.name] = region
        deleted = {s: [n for n in names if (s, n) != (sensor, region.name)]
                   for s, names in self.deleted.items()}
        self._save(changed, deleted)

    def record_delete(self, sensor: str, name: str) -> None:
        changed = {s: {n: r for n, r in regions.items() if (s, n) != (sensor, name)}
                   for s, regions in self.set.items()}
        deleted = {s: list(names) for s, names in self.deleted.items()}
        if name not in deleted.setdefault(sensor, []):
            deleted[sensor].append(name)
        self._save(changed, deleted)

    @staticmethod
    def to_dict(changed: dict[str, dict[str, RegionConfig]],
                deleted: dict[str, list[str]]) -> dict[str, Any]:
        return {"version": VERSION,
                "set": {s: {n: r.to_dict() for n, r in regions.items()}
                        for s, regions in changed.items() if regions},
                "deleted": {s: names for s, names in deleted.items() if names}}

    def _save(self, changed: dict[str, dict[str, RegionConfig]],
              deleted: dict[str, list[str]]) -> None:
        if self.path is not None:
            self._write(json.dumps(self.to_dict(changed, deleted), indent=2,
                                   ensure_ascii=False) + "\n")
        self.set, self.deleted = changed, deleted  # only once it is on disk

    def _write(self, text: str) -> None:
        assert self.path is not None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # the rename itself survives a power cut once the directory is on disk
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
        self.writes += 1
