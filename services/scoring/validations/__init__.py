"""Model validation over HTTP: a published run's scores, credit's observed outcomes, the
governance statistics (services/scoring/governance), stored per input fingerprint."""
