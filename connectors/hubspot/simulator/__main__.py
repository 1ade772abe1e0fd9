"""`python -m connectors.hubspot.simulator --port 8410 ...`"""

from connectors.hubspot.simulator import main

main()
