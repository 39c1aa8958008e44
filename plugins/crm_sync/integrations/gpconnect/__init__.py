"""GP Connect (seed 002): .xlsx/.csv reports in S3 -> WhatsApp check -> RapidPro contacts and flow starts."""
