"""The ``uploads`` table: one row per file a key uploaded, until it expires; and
``upload_reservations``: the bytes of uploads still arriving, held against the key's quota."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vedit.db import Base


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # up_<32 hex>
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    # The object key of DashScope's upload flow (``oss://<object_key>``); None for /v1/uploads.
    object_key: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(128))  # the file name shown in its URL
    # The client's own file name, as sent (any script), for display only; never a path.
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # "video" | "image"
    content_type: Mapped[str] = mapped_column(String(64))  # sniffed, never the client's word
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class UploadReservation(Base):
    """Bytes an upload in progress holds against its key's quota (VEDIT_UPLOAD_QUOTA_BYTES),
    from its declared size before its body is read; replaced by its ``uploads`` row (of the
    real size) when it is kept, deleted when it fails, or purged once ``expires_at`` passes
    (a server that died mid-upload)."""

    __tablename__ = "upload_reservations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ur_<32 hex>
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
