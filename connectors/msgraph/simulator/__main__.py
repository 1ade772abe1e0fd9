"""`python -m connectors.msgraph.simulator --port 8420 ...`"""

from connectors.msgraph.simulator import main

main()
