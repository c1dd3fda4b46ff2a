module templategolden

go 1.19
