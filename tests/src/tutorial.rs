//! The user reference's data (`GETTING_STARTED.md`, step 1), shared by the tests and
//! the tutorial example that follow its steps.

/// Step 1 of the reference: the department tree and its employees, with the seed rows.
pub const STEP1: &str = "
-- Department hierarchy (self-referencing tree)
CREATE TABLE departments (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    parent_id  INT REFERENCES departments(id)
);
-- Employees belong to a department
CREATE TABLE employees (
    id            SERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    department_id INT NOT NULL REFERENCES departments(id),
    salary        NUMERIC(10,2) NOT NULL
);
INSERT INTO departments (id, name, parent_id) VALUES (1, 'Company', NULL);
INSERT INTO departments (id, name, parent_id) VALUES
    (2, 'Engineering', 1), (3, 'Sales', 1), (4, 'Operations', 1);
INSERT INTO departments (id, name, parent_id) VALUES
    (5, 'Backend', 2), (6, 'Frontend', 2), (7, 'Platform', 2);
INSERT INTO employees (name, department_id, salary) VALUES
    ('Alice', 5, 120000), ('Bob', 5, 115000), ('Charlie', 6, 110000), ('Diana', 7, 130000),
    ('Eve', 3, 95000), ('Frank', 3, 90000), ('Grace', 4, 100000);
";
