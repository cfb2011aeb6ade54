from sqlalchemy import text


async def test_migrated_database_has_workflow_states(engine):
    async with engine.connect() as conn:
        cols = (
            (
                await conn.execute(
                    text(
                        "select column_name from information_schema.columns "
                        "where table_name='workflow_states' order by ordinal_position"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert cols[:5] == ["id", "run_id", "case_id", "customer_id", "status"]
