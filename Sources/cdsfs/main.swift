print("cdsfs")
