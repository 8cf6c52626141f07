"""The ``uploads`` table: one row per file a key uploaded, until it expires."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vedit.db import Base


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # up_<32 hex>
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    # The object key of DashScope's upload flow (``oss://<object_key>``); None for /v1/uploads.
    object_key: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(128))  # the file name shown in its URL
    kind: Mapped[str] = mapped_column(String(16))  # "video" | "image"
    content_type: Mapped[str] = mapped_column(String(64))  # sniffed, never the client's word
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
