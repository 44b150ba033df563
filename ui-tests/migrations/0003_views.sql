-- Views a stream table can read: each is expanded into its body where a query reads
-- it, so the stream table is maintained over `employees` and `departments`.
CREATE VIEW staff AS
    SELECT e.id, e.name, e.salary, d.name AS department
      FROM employees e JOIN departments d ON d.id = e.department_id
     WHERE e.salary > 1000;

-- A view over a view, with a column list that renames its first two columns.
CREATE VIEW senior_staff (staff_id, staff_name) AS
    SELECT id, name, department FROM staff WHERE salary > 5000;

-- A materialized view cannot be read by a stream table (nothing captures its changes).
CREATE MATERIALIZED VIEW payroll AS
    SELECT department_id, sum(salary) AS total FROM employees GROUP BY department_id
    WITH NO DATA;
