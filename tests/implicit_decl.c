/* Must NOT compile with the project's warning flags (CTest
 * implicit_declaration_fails): ssm_no_such_function is declared nowhere. */
int main(void)
{
    return ssm_no_such_function(1);
}
