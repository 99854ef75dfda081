"""opendepot: validate, consolidate and publish open data files.

The domain package, shipped to Lambda as the shared layer. Pure modules (decode, validate,
consolidate, render, catalog) import no boto3 and read no environment; ``config`` is the only
module that reads ``os.environ`` and ``storage`` the only one that talks to S3 and SQS.
"""

__version__ = "0.1.0"
