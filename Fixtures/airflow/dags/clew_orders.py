"""A small Airflow DAG for Clew's end-to-end test with the OpenLineage provider.

Four tasks over files and a SQLite table: a Bash extract, a Python clean step (which fails when the run's
conf says so; its filter is traced by Clew's Python package, `@clew.trace`), a SQL load into SQLite and a
Python report. Datasets are declared as inlets and outlets,
with their columns, so the provider sends them with schema facets.
"""
import json
import os
import sqlite3

import clew
import pendulum
from openlineage.client.event_v2 import Dataset as OLDataset
from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset, sql_job
from airflow.providers.common.compat.lineage.entities import Column, File, Table

try:  # Airflow 3: the task SDK and the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.operators.bash import BashOperator
    from airflow.operators.python import PythonOperator
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.openlineage.extractors.manager import ExtractorManager

WORK = os.environ.get("CLEW_AIRFLOW_WORK", "/tmp/clew-airflow")
RAW = f"{WORK}/raw_orders.csv"
CLEAN = f"{WORK}/clean_orders.csv"
DB = f"{WORK}/warehouse.db"


def _fields(*names):
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in names])


# The clean file, declared as an OpenLineage dataset with its columns and where each column comes from.
CLEAN_DATASET = OLDataset(
    namespace="file://",
    name=CLEAN.lstrip("/"),
    facets={
        "schema": _fields(("id", "INTEGER"), ("customer", "TEXT"), ("amount", "REAL")),
        "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields={
            column: column_lineage_dataset.Fields(
                inputFields=[column_lineage_dataset.InputField(namespace="file://", name=RAW.lstrip("/"), field=column)],
                transformationType="IDENTITY" if column != "amount" else "FILTER",
                transformationDescription="rows with a negative amount are dropped",
            )
            for column in ("id", "customer", "amount")
        }),
    },
)


class SqliteLoad(SQLExecuteQueryOperator):
    """SQL into SQLite, which the provider has no OpenLineage support for: the operator says what it read
    and wrote itself, as a team would for any database without it."""

    def get_openlineage_facets_on_complete(self, task_instance):
        from airflow.providers.openlineage.extractors import OperatorLineage

        query = ";\n".join(self.sql) if isinstance(self.sql, list) else self.sql
        return OperatorLineage(
            inputs=[ExtractorManager.convert_to_ol_dataset(i) for i in self.inlets],
            outputs=[ExtractorManager.convert_to_ol_dataset(o) for o in self.outlets],
            job_facets={"sql": sql_job.SQLJobFacet(query=query)},
        )


@clew.trace
def drop_negative(rows):
    """Every assignment here is a step of the task's attempt in Clew (sent to CLEW_URL, beside the
    lineage the OpenLineage provider sends)."""
    header, body = rows[0], rows[1:]
    kept = []
    for r in body:
        amount = float(r[2])
        if amount >= 0:
            kept.append(r)
    dropped = len(body) - len(kept)
    return header, kept


def clean(**context):
    if (context["dag_run"].conf or {}).get("fail_clean"):
        raise ValueError("negative amounts in raw_orders.csv (conf fail_clean)")
    with open(RAW) as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    header, kept = drop_negative(rows)
    with open(CLEAN, "w") as f:
        f.write(",".join(header) + "\n")
        for r in kept:
            f.write(",".join(r) + "\n")
    return len(kept)


def report(**context):
    con = sqlite3.connect(DB)
    total = con.execute("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM orders").fetchone()
    con.close()
    print(json.dumps({"orders": total[0], "amount": total[1]}))


with DAG(
    dag_id="clew_orders",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["clew"],
) as dag:
    extract = BashOperator(
        task_id="extract",
        bash_command=f"mkdir -p {WORK} && printf 'id,customer,amount\\n1,ada,12.5\\n2,bob,-3\\n3,cy,7.25\\n' > {RAW}",
        outlets=[File(url=f"file://{RAW}")],
    )
    clean_orders = PythonOperator(
        task_id="clean",
        python_callable=clean,
        inlets=[File(url=f"file://{RAW}")],
        outlets=[CLEAN_DATASET],
    )
    load = SqliteLoad(
        task_id="load",
        conn_id="clew_sqlite",
        sql=[
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)",
            "INSERT OR REPLACE INTO orders VALUES (1, 'ada', 12.5), (3, 'cy', 7.25)",
        ],
        inlets=[File(url=f"file://{CLEAN}")],
        outlets=[Table(database="warehouse", cluster="sqlite", name="orders",
                       columns=[Column(name="id", description="order id", data_type="INTEGER"),
                                Column(name="customer", description="customer name", data_type="TEXT"),
                                Column(name="amount", description="order amount", data_type="REAL")])],
    )
    summary = PythonOperator(
        task_id="report",
        python_callable=report,
        inlets=[Table(database="warehouse", cluster="sqlite", name="orders")],
    )
    extract >> clean_orders >> load >> summary
