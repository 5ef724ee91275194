"""The result of a generation the OpenAI-compatible endpoints waited for (they answer with the images, not with a
generation to poll)."""

from generations.models import Generation, GenerationImage
from generations.selectors import image_list_serveable
from generations.services.cancel import GenerationNotCancelable, generation_cancel
from project import errors


class GenerationTimedOut(errors.TimedOut):
    code = "generation_timeout"
    message = "The generation did not finish in time and was canceled."


class GenerationFailed(errors.UpstreamFailed):
    code = "upstream_error"


class ContentPolicyViolation(errors.InvalidRequest):
    code = "content_policy_violation"


def _failure_error(generation: Generation) -> errors.DomainError:
    if generation.error_code == "content_policy_violation":
        return ContentPolicyViolation(generation.error_message or "Rejected by the content policy.")
    return GenerationFailed(
        generation.error_message or "The image could not be generated.", code=generation.error_code or "upstream_error"
    )


def generation_result_final(*, generation: Generation) -> tuple[Generation, list[GenerationImage]]:
    """After the wait: the generation with the images the tenant may see (withheld and rejected ones left out). One
    still unfinished at the deadline is canceled (charged only what the upstream charged us) and refused with
    `generation_timeout`; a failed one raises its error."""
    if not generation.is_final:
        try:
            generation_cancel(generation=generation)
            raise GenerationTimedOut()
        except GenerationNotCancelable:
            generation = Generation.objects.get(pk=generation.pk)  # it finished in the meantime
    if generation.status != Generation.Status.SUCCEEDED:
        raise _failure_error(generation)
    return generation, image_list_serveable(generation=generation)
