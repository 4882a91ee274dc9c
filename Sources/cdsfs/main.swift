import ArgumentParser

CDSFS.main()
