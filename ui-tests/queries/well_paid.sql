-- Employees earning more than 100k.
SELECT e.id, e.name, e.salary
FROM employees e
WHERE e.salary > 100000
