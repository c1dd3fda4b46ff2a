module musterconfdgolden

go 1.19
