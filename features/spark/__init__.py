"""The Spark engine (`engine: spark`): the same KPIs, validation, forecasts, rules and batch scoring on Apache Spark.

Optional: `pip install 'ecomlab[spark]'` and Java 17. Nothing on the default path imports pyspark: the
quickstart, the pandas engine and the service never load it. `settings` is plain pydantic; `session`
imports pyspark only when a session is asked for.
"""
