from django.core.management.base import BaseCommand, CommandParser

from aihubmix_sandbox.render import answer_bytes_set
from aihubmix_sandbox.server import sandbox_server_create


class Command(BaseCommand):
    help = "Run the local AIHubMix emulator (every request family, tasks, image files, fault markers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--latency", type=float, default=0.0, help="seconds every generation takes")
        parser.add_argument("--api-key", default=None, help="accept only this bearer token (default: any)")
        parser.add_argument("--verbose", action="store_true", help="log every request")
        parser.add_argument(
            "--answer-bytes", type=int, default=0,
            help="pad each image with noise so its base64 is about this long (gpt-image-2 high: ~3000000)",
        )
        parser.add_argument(
            "--list-hide", action="append", default=[], metavar="MODEL",
            help="leave this model out of the public model list /api/v1/models (repeatable)",
        )
        parser.add_argument(
            "--list-add", action="append", default=[], metavar="MODEL",
            help="list this extra image model in /api/v1/models (repeatable)",
        )

    def handle(
        self,
        *args: object,
        host: str,
        port: int,
        latency: float,
        api_key: str | None,
        verbose: bool,
        answer_bytes: int = 0,
        list_hide: list[str] | None = None,
        list_add: list[str] | None = None,
        **options: object,
    ) -> None:
        answer_bytes_set(answer_bytes)
        server = sandbox_server_create(
            host=host, port=port, latency=latency, api_key=api_key, verbose=verbose
        )
        server.state.model_list_hidden.update(list_hide or ())
        server.state.model_list_added.extend(
            {"model_id": name, "model_name": name, "pricing": {}} for name in list_add or ()
        )
        self.stdout.write(
            f"AIHubMix sandbox on http://{server.authority}/v1 (tasks: /v1/tasks, latency {latency:g} s)"
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.state.stopping.set()
            server.server_close()
