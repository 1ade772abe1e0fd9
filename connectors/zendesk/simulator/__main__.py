"""`python -m connectors.zendesk.simulator --port 8430 ...`"""

from connectors.zendesk.simulator import main

main()
