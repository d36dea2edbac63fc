module coral.test/payments

go 1.19
