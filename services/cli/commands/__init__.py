"""One module per `fleet` command group; services/cli/main.py assembles them."""
