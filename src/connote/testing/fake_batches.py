"""The Files and Batch endpoints of the fake OpenAI server (a mixin of :class:`FakeOpenAI`)."""

from __future__ import annotations

import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING

from connote.testing.fake_content import image_of

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler as Handler


class FilesAndBatches:
    """``POST /v1/files``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches[/{id}]``.

    Relies on the host class for ``files``, ``batches``, ``batch_polls``, ``completion`` and the
    id/log/fault helpers.
    """

    files: dict[str, dict]
    batches: dict[str, dict]
    batch_polls: int
    _lock: threading.Lock

    def _upload(self, h: Handler, raw: bytes) -> None:
        ctype = h.headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
        content, filename, purpose = b"", "upload.jsonl", "batch"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                content = part.get_payload(decode=True) or b""
                filename = part.get_filename() or filename
            elif name == "purpose":
                purpose = (part.get_payload(decode=True) or b"").decode()
        fid = self._next_id("file")
        obj = {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[fid] = {**obj, "content": content}
        self._log({"path": "files", "image": None, "status": 200})
        h._send(200, obj)

    def _file_content(self, h: Handler, fid: str) -> None:
        f = self.files.get(fid)
        if f is None:
            h._error(404, f"no file {fid}")
            return
        h._send(200, None, raw=f["content"])

    def _create_batch(self, h: Handler, raw: bytes) -> None:
        req = json.loads(raw or b"{}")
        fid = req.get("input_file_id")
        if fid not in self.files:
            h._error(400, f"no file {fid}")
            return
        bid = self._next_id("batch")
        obj = {
            "id": bid,
            "object": "batch",
            "endpoint": req.get("endpoint"),
            "input_file_id": fid,
            "completion_window": req.get("completion_window", "24h"),
            "status": "validating",
            "created_at": int(time.time()),
            "output_file_id": None,
            "error_file_id": None,
            "metadata": req.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        with self._lock:
            self.batches[bid] = {"obj": obj, "polls": 0}
        self._log({"path": "batches", "image": None, "status": 200})
        h._send(200, obj)

    def _run_batch(self, b: dict) -> None:
        obj = b["obj"]
        lines = self.files[obj["input_file_id"]]["content"].decode().splitlines()
        out, err, done, failed = [], [], 0, 0
        for line in filter(None, (x.strip() for x in lines)):
            item = json.loads(line)
            image, _ = image_of(item["body"])
            fault = self._choose({"path": "batch", "model": item["body"].get("model"), "image": image})
            if fault["kind"] not in {"ok", "refusal", "length", "empty", "400", "404"}:
                fault = {"kind": "ok"}
            status, body = self.completion(item["body"], fault)
            self._log(
                {"path": "batch-item", "model": item["body"].get("model"), "image": image, "status": status}
            )
            rec = {
                "id": self._next_id("batch_req"),
                "custom_id": item["custom_id"],
                "response": {"status_code": status, "request_id": self._next_id("req"), "body": body},
                "error": None,
            }
            if status == 200:
                out.append(rec)
                done += 1
            else:
                err.append(rec)
                failed += 1
        for key, recs in (("output_file_id", out), ("error_file_id", err)):
            if recs:
                fid = self._next_id("file")
                content = "".join(json.dumps(r) + "\n" for r in recs).encode()
                self.files[fid] = {
                    "id": fid,
                    "object": "file",
                    "bytes": len(content),
                    "created_at": int(time.time()),
                    "filename": f"{obj['id']}_{key}.jsonl",
                    "purpose": "batch_output",
                    "status": "processed",
                    "content": content,
                }
                obj[key] = fid
        obj["status"] = "completed"
        obj["completed_at"] = int(time.time())
        obj["request_counts"] = {"total": done + failed, "completed": done, "failed": failed}

    def _get_batch(self, h: Handler, bid: str, cancel: bool = False) -> None:
        with self._lock:
            b = self.batches.get(bid)
        if b is None:
            h._error(404, f"no batch {bid}")
            return
        if cancel:
            b["obj"]["status"] = "cancelled"
        elif b["obj"]["status"] not in {"completed", "cancelled"}:
            b["polls"] += 1
            if b["polls"] >= self.batch_polls:
                self._run_batch(b)
            else:
                b["obj"]["status"] = "in_progress"
        h._send(200, b["obj"])

    def _list_batches(self, h: Handler) -> None:
        with self._lock:
            data = [b["obj"] for b in self.batches.values()]
        h._send(
            200,
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )
