"""The lab's only image, built locally: a static busybox as ``local/busybox:1``.

No registry is reachable, so every engine gets the image imported directly.
``busybox httpd -f -p 3838`` stands in for a Shiny app.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from autoscaler.lab.errors import LabError

BUSYBOX_IMAGE = "local/busybox:1"
APPLETS = ("sh", "sleep", "httpd", "cat", "ls", "env", "hostname", "wget", "true", "kill")


def find_busybox() -> Path:
    found = shutil.which("busybox")
    if not found:
        raise LabError("busybox is not installed (apt-get install busybox-static)")
    return Path(found)


def busybox_tar(busybox: Path | None = None) -> bytes:
    """A root filesystem with /bin/busybox and applet links, as an uncompressed tar."""
    binary = (busybox or find_busybox()).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "tmp", "www"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(binary)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(binary))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def import_image(api: Any, data: bytes, tag: str = BUSYBOX_IMAGE) -> None:
    """Import ``data`` (a rootfs tar) into the engine behind ``api`` (a docker.APIClient)."""
    repository, _, version = tag.rpartition(":")
    answer = api.import_image_from_data(data, repository=repository, tag=version)
    text = answer if isinstance(answer, str) else json.dumps(answer)
    if '"error"' in text:
        raise LabError(f"importing {tag} failed: {text[-500:]}")
    api.inspect_image(tag)
