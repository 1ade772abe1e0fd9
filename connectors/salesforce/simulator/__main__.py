"""`python -m connectors.salesforce.simulator --port 8420 ...`"""

from connectors.salesforce.simulator import main

main()
