#!/usr/bin/env python3
"""Sends OpenLineage events to `clew serve` with the openlineage-python client (PyPI), the way Airflow's
provider does: a DAG run (START), two task runs with parent facets (one with partitioned input and output
through the subset facet, gzip-compressed), a FAIL with an errorMessage facet, a retried duplicate, and
the DAG run's COMPLETE. Prints the run ids as JSON for the caller to query.

usage: openlineage_client_check.py URL TOKEN
"""
import json
import sys
import uuid
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, parent_run
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpCompression, HttpConfig, HttpTransport

PRODUCER = "https://github.com/clew/tests/openlineage_client_check"


def main():
    url, token = sys.argv[1], sys.argv[2]
    config = HttpConfig(url=url, auth=ApiKeyTokenProvider({"apiKey": token}), compression=HttpCompression.GZIP)
    client = OpenLineageClient(transport=HttpTransport(config))

    def now():
        return datetime.now(timezone.utc).isoformat()

    ns = "airflow-prod"
    dag_run = str(uuid.uuid4())
    dag_job = Job(namespace=ns, name="orders_daily")
    client.emit(RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=dag_run), job=dag_job, producer=PRODUCER))

    parent = parent_run.ParentRunFacet(run=parent_run.Run(runId=dag_run), job=parent_run.Job(namespace=ns, name="orders_daily"))
    subset_in = {"subset": {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/BaseSubsetDatasetFacet.json#/$defs/InputSubsetInputDatasetFacet",
                            "inputCondition": {"type": "partition", "partitions": [{"identifier": "2026-11-20", "dimensions": {"day": "2026-11-20"}}]}}}
    subset_out = {"subset": {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/BaseSubsetDatasetFacet.json#/$defs/OutputSubsetOutputDatasetFacet",
                             "outputCondition": {"type": "partition", "partitions": [{"identifier": "2026-11-20", "dimensions": {"day": "2026-11-20"}}]}}}

    extract_run = str(uuid.uuid4())
    extract = Job(namespace=ns, name="orders_daily.extract")
    src = InputDataset(namespace="postgres://db:5432", name="shop.public.orders", inputFacets=subset_in)
    raw = OutputDataset(namespace="s3://lake", name="raw/orders", outputFacets=subset_out)
    start = RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=extract_run, facets={"parent": parent}), job=extract,
                     inputs=[src], outputs=[raw], producer=PRODUCER)
    client.emit(start)
    complete = RunEvent(eventType=RunState.COMPLETE, eventTime=now(), run=Run(runId=extract_run, facets={"parent": parent}), job=extract,
                        inputs=[src], outputs=[raw], producer=PRODUCER)
    client.emit(complete)
    client.emit(complete)  # a client retry: must not be applied twice

    load_run = str(uuid.uuid4())
    load = Job(namespace=ns, name="orders_daily.load")
    raw_in = InputDataset(namespace="s3://lake", name="raw/orders", inputFacets=subset_in)
    mart = OutputDataset(namespace="postgres://dw:5432", name="mart.orders_daily", outputFacets=subset_out)
    client.emit(RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=load_run, facets={"parent": parent}), job=load,
                         inputs=[raw_in], outputs=[mart], producer=PRODUCER))
    err = error_message_run.ErrorMessageRunFacet(message="duplicate key value violates unique constraint", programmingLanguage="python")
    client.emit(RunEvent(eventType=RunState.FAIL, eventTime=now(), run=Run(runId=load_run, facets={"parent": parent, "errorMessage": err}), job=load,
                         inputs=[raw_in], outputs=[mart], producer=PRODUCER))
    client.emit(RunEvent(eventType=RunState.FAIL, eventTime=now(), run=Run(runId=dag_run), job=dag_job, producer=PRODUCER))
    print(json.dumps({"dag_run": dag_run, "extract_run": extract_run, "load_run": load_run}))


if __name__ == "__main__":
    main()
