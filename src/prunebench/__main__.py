from prunebench.commands.cli import main

main()
