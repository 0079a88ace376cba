"""The workorder domain: branches' booking capacity, appointments and work orders as event-sourced aggregates,
and settlement arithmetic in integer fen. Pure: no database, broker, web framework or storage client here."""
