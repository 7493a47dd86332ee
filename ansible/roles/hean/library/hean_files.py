#!/usr/bin/python
"""Write a set of small files and directories, and remove others, in one module run.

Why: the role writes about forty unit files, drop-ins and settings per host. One
ansible.builtin.copy/file per path costs one to two remote Python runs each (about 40 s per
deploy, even when nothing changes); this does them all in one, and reports the changed paths so
the role restarts only the stacks they belong to.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hean_files
short_description: Write many small files and directories in one run (role-local)
description:
  - Creates the directories, writes the files (atomically, only when content, owner, group or mode
    differ) and removes the paths in O(absent), in that order.
  - Supports check mode and diff mode.
options:
  directories:
    description: Directories to create, each a dict of C(path), C(owner), C(group) and C(mode).
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files to write, each a dict of C(path), C(content), C(owner), C(group), C(mode) and optionally
        C(validate), a command run on the new content (C(%s) is its path) before it replaces the file.
    type: list
    elements: dict
    default: []
  absent:
    description: Files to remove.
    type: list
    elements: path
    default: []
author: HEAN
"""

RETURN = r"""
changed_paths:
  description: The paths created, rewritten, re-owned or removed (would be, in check mode).
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _wanted(spec: dict) -> tuple[int, int, int]:
    return (pwd.getpwnam(spec.get("owner", "root")).pw_uid, grp.getgrnam(spec.get("group", "root")).gr_gid,
            int(str(spec["mode"]), 8))


def _meta_differs(st: os.stat_result, spec: dict) -> bool:
    try:
        return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != _wanted(spec)
    except KeyError:   # the owner or group does not exist yet (check mode on a fresh host)
        return True


def _directory(spec: dict, check: bool) -> bool:
    path = spec["path"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path} exists and is not a directory")
    if st is not None and not _meta_differs(st, spec):
        return False
    if not check:
        uid, gid, mode = _wanted(spec)
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def _file(module: AnsibleModule, spec: dict, check: bool, diffs: list) -> bool:
    path, content = spec["path"], spec["content"].encode()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    old = None
    if st is not None and stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            old = f.read()
        if old == content and not _meta_differs(st, spec):
            return False
    if old != content:
        diffs.append({"before_header": path, "after_header": path,
                      "before": (old or b"").decode(errors="replace"), "after": spec["content"]})
    if not check:
        uid, gid, mode = _wanted(spec)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".hean-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                os.fchown(f.fileno(), uid, gid)
                os.fchmod(f.fileno(), mode)
            if spec.get("validate"):
                rc, out, err = module.run_command(spec["validate"] % tmp)
                if rc != 0:
                    raise ValueError(f"{path}: validation failed: {(err or out).strip()[-2000:]}")
            os.replace(tmp, path)
        except (OSError, ValueError):
            os.unlink(tmp)
            raise
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={"directories": {"type": "list", "elements": "dict", "default": []},
                       "files": {"type": "list", "elements": "dict", "default": []},
                       "absent": {"type": "list", "elements": "path", "default": []}},
        supports_check_mode=True)
    check, changed, diffs = module.check_mode, [], []
    try:
        for spec in module.params["directories"]:
            if _directory(spec, check):
                changed.append(spec["path"])
        for spec in module.params["files"]:
            if _file(module, spec, check, diffs):
                changed.append(spec["path"])
        for path in module.params["absent"]:
            if os.path.lexists(path):
                if not check:
                    os.unlink(path)
                changed.append(path)
    except (OSError, KeyError, ValueError) as exc:
        module.fail_json(msg=f"hean_files: {exc}", changed_paths=changed)
    module.exit_json(changed=bool(changed), changed_paths=changed, diff=diffs)


if __name__ == "__main__":
    main()
