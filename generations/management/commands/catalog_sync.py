import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import SYSTEM
from generations.providers.model_list import ModelListUnavailable
from generations.selectors.catalog_sync import CatalogSyncReport, catalog_sync_report
from generations.services.catalog import InvalidCatalogModel
from generations.services.catalog_sync import NotInSyncReport, catalog_sync_disable, catalog_sync_draft_add
from generations.upstream import upstream_model_list_fetch


class Command(BaseCommand):
    help = (
        "Compare the catalog with AIHubMix's public list of image models (<host of AIHUBMIX_BASE_URL>/api/v1/models"
        "?type=image_generation): models we offer that it no longer lists, and image models it lists that we lack."
        " Changes nothing unless asked: --disable ID retires an offered model the list leaves out, --add-draft NAME"
        " adds a listed model as a draft (not offered until staff complete it). Both audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--disable", action="append", default=[], metavar="ID", help="retire this model (repeatable)"
        )
        parser.add_argument(
            "--add-draft", action="append", default=[], metavar="NAME",
            help="add this upstream model as a draft (repeatable)",
        )

    def handle(self, *args: object, as_json: bool, disable: list[str], add_draft: list[str], **options: object) -> None:
        try:
            upstream = upstream_model_list_fetch()
        except ModelListUnavailable as exc:
            raise CommandError(str(exc), returncode=2) from exc
        report = catalog_sync_report(upstream=upstream)
        if as_json:
            self.stdout.write(_json_dumps(report.as_dict()))
        else:
            self._report_write(report)
        try:
            for model_id in disable:
                row = catalog_sync_disable(model_id=model_id, upstream=upstream, actor=SYSTEM)
                self.stderr.write(f"Disabled {row.model_id}: status retired (audited as catalog_model.disabled).")
            for name in add_draft:
                row = catalog_sync_draft_add(name=name, upstream=upstream, actor=SYSTEM)
                self.stderr.write(
                    f"Added {row.model_id} as a draft (audited as catalog_model.drafted): set its vendor, family,"
                    " rules and price in the admin, then make it active."
                )
        except (NotInSyncReport, InvalidCatalogModel) as exc:
            raise CommandError(f"Nothing changed: {exc.message}") from exc

    def _report_write(self, report: CatalogSyncReport) -> None:
        write = self.stdout.write
        write(f"AIHubMix lists {report.listed} image models.")
        write(f"Offered here, no longer listed upstream ({len(report.missing)}):")
        for row in report.missing:
            write(f"  {row.model_id} ({row.alias}, {row.status})  -> catalog_sync --disable {row.model_id}")
        write(f"Listed upstream, not in the catalog ({len(report.new)}):")
        for new in report.new:
            title = f' "{new.upstream.model_name}"' if new.upstream.model_name else ""
            pricing = f" pricing {_json_dumps(new.upstream.pricing)}" if new.upstream.pricing else ""
            write(f"  {new.name}{title}{pricing}  -> catalog_sync --add-draft {new.name} (as {new.suggested_id})")
        if not report.missing and not report.new:
            write("The catalog and the upstream's list agree.")


def _json_dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True)
