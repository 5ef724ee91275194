"""Where generation images live. Keys are derived from ids, never from user input."""

from typing import BinaryIO

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.urls import reverse

from generations.models import GenerationImage

_SIGNING_SALT = "generations.image-download"


def output_key_for(
    *, tenant_slug: str, year_month: str, public_id: str, attempt: int, index: int, extension: str
) -> str:
    """One key per claim attempt: a forwarder that lost its lease (cut off, taken over) and uploads late writes
    beside the files the taker recorded, never over them."""
    return f"tenants/{tenant_slug}/generations/{year_month}/{public_id}/attempt-{attempt}/{index}.{extension}"


def input_key(*, tenant_slug: str, generation_public_id: str, created_year_month: str, index: int, extension: str) -> str:
    return f"tenants/{tenant_slug}/generations/{created_year_month}/{generation_public_id}/inputs/{index}.{extension}"


def blob_save(*, key: str, data: bytes) -> str:
    """Save bytes under exactly `key` (an existing object there is replaced: keys are unique per attempt)."""
    if default_storage.exists(key):
        default_storage.delete(key)
    saved = default_storage.save(key, ContentFile(data))
    return saved


def blob_save_file(*, key: str, file: BinaryIO) -> str:
    """`blob_save` from an open file, copied in chunks (never read whole into memory)."""
    if default_storage.exists(key):
        default_storage.delete(key)
    file.seek(0)
    return default_storage.save(key, File(file, name=key.rsplit("/", 1)[-1]))


def blob_delete(*, key: str) -> None:
    default_storage.delete(key)


def blob_read(*, key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        return handle.read()


def storage_is_s3() -> bool:
    return settings.STORAGE_BACKEND == "s3"


def presigned_storage_url(*, image: GenerationImage) -> str:
    return default_storage.url(
        image.storage_key,
        parameters={"ResponseContentType": image.content_type},
        expire=settings.SIGNED_URL_MAX_AGE_SECONDS,
    )


def signed_download_url(*, image: GenerationImage) -> str:
    """A short-lived URL anyone holding it can fetch: S3 presigned, or a signed URL served by us.

    Our own signed URLs name the image, not the file, so a later rejection stops them working (451).
    """
    if storage_is_s3():
        return presigned_storage_url(image=image)
    token = signing.dumps(image.pk, salt=_SIGNING_SALT)
    return reverse("signed-image", kwargs={"token": token})


def signed_token_image_id(token: str) -> int | None:
    try:
        return int(signing.loads(token, salt=_SIGNING_SALT, max_age=settings.SIGNED_URL_MAX_AGE_SECONDS))
    except (signing.BadSignature, TypeError, ValueError):
        return None
