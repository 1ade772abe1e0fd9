"""`python -m connectors.pipedrive.simulator --port 8420 ...`"""

from connectors.pipedrive.simulator import main

main()
