"""Serve the campaign flow: ``python -m flows.serve [--name NAME]``, from the repo root.

This process registers a deployment ``aloop-campaign/NAME`` with the Prefect API at
PREFECT_API_URL and then stays up, running every flow run started from the UI or with
``prefect deployment run 'aloop-campaign/NAME' --param config_path=...`` as a subprocess on
this machine. Stop it with Ctrl-C.

Serve or deploy to a work pool?

- serve (this module): one long-lived process, no work pool and no worker; the runs execute
  where it runs. Right for a workstation or a single head node with a Prefect server.
- work pool (``prefect.yaml``, ``prefect deploy --all``, ``prefect worker start --pool
  aloop-pool``): the deployment lives on the server; any number of workers, on other
  machines, pick its runs up. Right when several machines, or the team, share runs.

Either way the labelling inside a run goes where the campaign's ``execution`` section
says (threads and processes here, or a Dask cluster). See docs/scale-out.md.
"""

from __future__ import annotations

import argparse

from flows.campaign import campaign_flow

DEFAULT_NAME = "aloop-campaign"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve", description="Serve the aloop campaign flow."
    )
    parser.add_argument(
        "--name",
        default=DEFAULT_NAME,
        help=f"deployment name (default: {DEFAULT_NAME}); runs are 'aloop-campaign/NAME'",
    )
    args = parser.parse_args(argv)
    campaign_flow.serve(name=args.name, tags=["aloop"])


if __name__ == "__main__":
    main()
