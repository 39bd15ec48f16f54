//! Validation beyond the schema: names, unique steps, quantities, durations, cron.
