from restoreagent.cli import main

main()
