"""Example child flows: ordinary Prefect 1 flows that flowc specs compose."""
