"""The submit path builds its rows without reading them back, through private Django attributes: the one-statement
reserve marks the inserted rows as saved (`_state.adding`, `_state.db` in billing/services/ledger.py) and a new
generation gets an empty, already evaluated image list (`_prefetched_objects_cache`, `_result_cache`,
`_prefetch_done` in `Generation.images_known_empty`). These tests fail when Django changes what those attributes
mean: the rows must behave exactly as rows Django fetched itself."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generations.models import Generation, GenerationImage
from generations.services.submit import GenerationRequest, generation_submit
from tests.generations.support import GPT_IMAGE

pytestmark = pytest.mark.django_db


def _submit(customer) -> Generation:
    request = GenerationRequest(model=GPT_IMAGE, prompt="a lighthouse", n=1, quality="low", size="1024x1024")
    return generation_submit(tenant=customer.tenant, api_key=customer.key.api_key, request=request).generation


@pytest.mark.postgres
def test_a_row_inserted_by_the_one_statement_reserve_behaves_as_a_fetched_row(make_customer) -> None:
    customer = make_customer()
    with CaptureQueriesContext(connection) as queries:
        generation = _submit(customer)
    assert queries.captured_queries[-1]["sql"].startswith("WITH chain_head AS")  # the path under test
    fetched = Generation.objects.get(public_id=generation.public_id)

    assert generation.pk == fetched.pk
    assert (generation._state.adding, generation._state.db) == (fetched._state.adding, fetched._state.db)
    # Unique checks skip the row itself only for a saved row: an unsaved twin collides with it.
    generation.validate_unique()
    twin = Generation.objects.get(pk=generation.pk)
    twin._state.adding = True
    with pytest.raises(ValidationError, match="public"):
        twin.validate_unique()
    # save() updates the row in place, and refresh_from_db() reads it from the database it came from.
    generation.prompt = "a lighthouse at dusk"
    with CaptureQueriesContext(connection) as saved:
        generation.save(update_fields=["prompt"])
    assert [query["sql"].split()[0] for query in saved.captured_queries] == ["UPDATE"]
    Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.CANCELED)
    generation.refresh_from_db()
    assert (generation.status, generation.prompt) == (Generation.Status.CANCELED, "a lighthouse at dusk")


def test_a_new_generations_image_list_is_djangos_own_empty_prefetch(make_customer) -> None:
    generation = _submit(make_customer())
    fetched = Generation.objects.prefetch_related("images").get(pk=generation.pk)
    ours, theirs = generation._prefetched_objects_cache, fetched._prefetched_objects_cache

    assert ours.keys() == theirs.keys() == {"images"}
    assert type(ours["images"]) is type(theirs["images"])
    with CaptureQueriesContext(connection) as queries:
        for row in (generation, fetched):
            assert list(row.images.all()) == []
            assert (row.images.count(), row.images.exists()) == (0, False)
    assert queries.captured_queries == []

    # Once images exist, a refresh forgets the empty list as it forgets Django's own.
    GenerationImage.objects.create(generation=generation, index=0, storage_key="k", content_type="image/png",
                                   width=1, height=1, byte_size=1, sha256="0" * 64)
    generation.refresh_from_db()
    assert generation.images.count() == 1

