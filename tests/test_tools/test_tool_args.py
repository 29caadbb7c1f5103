"""tools/train.py, tools/test.py and the other tools that read a config
(tools/cache_features.py, analysis_tools/class_freq_cls.py,
analysis_tools/seg_pixel_freq.py): a missing config file, a config with a
syntax error and a ``--cfg-options`` item without ``=`` are named (file,
line, argument)."""
import pytest

BAD = 'a = 1\nb = dict(x=1\nc = 2\n'


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_config_syntax_error_names_file_and_line(tmp_path, load_tool, tool):
    bad = tmp_path / 'bad.py'
    bad.write_text(BAD)
    argv = [str(bad)] + (['ckpt.pth'] if tool == 'test' else [])
    with pytest.raises(SystemExit) as info:
        load_tool(tool).main(argv)
    message = str(info.value)
    assert message.startswith(f'syntax error in config {bad}, line 2: ')
    assert "'(' was never closed" in message and 'b = dict(x=1' in message
    assert '<unknown>' not in message


def test_syntax_error_in_a_base_config_names_the_base(tmp_path, load_tool):
    (tmp_path / 'base').mkdir()
    (tmp_path / 'base' / 'model.py').write_text(BAD)
    top = tmp_path / 'top.py'
    top.write_text("_base_ = ['./base/model.py']\nd = 1\n")
    with pytest.raises(
            SystemExit,
            match=r'syntax error in config .*'
            r'base/model\.py, line 2'):
        load_tool('train').main([str(top)])
    with pytest.raises(SystemExit, match=r'config file .*nope\.py not found'):
        load_tool('train').main([str(tmp_path / 'nope.py')])


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_cfg_options_without_equals_is_a_usage_error(tmp_path, load_tool, tool,
                                                     capsys):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text('a = 1\n')
    argv = [str(cfg)] + (['ckpt.pth'] if tool == 'test' else [])
    with pytest.raises(SystemExit) as info:
        load_tool(tool).parse_args(argv +
                                   ['--cfg-options', 'a=2', 'max_epochs'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert ("error: --cfg-options 'max_epochs': expected KEY=VALUE "
            '(e.g. --cfg-options train_cfg.max_epochs=1)') in err
    args = load_tool(tool).parse_args(argv + ['--cfg-options', 'a=2'])
    assert args.cfg_options == dict(a=2)


# The other tools that read a config: the same two errors.
OTHER_TOOLS = {
    'cache_features': ['--out', 'cache'],
    'analysis_tools/class_freq_cls': ['--out', 'f.json', '--config'],
    'analysis_tools/seg_pixel_freq': ['f.json'],
}


@pytest.mark.parametrize('tool', sorted(OTHER_TOOLS))
def test_other_tools_name_cfg_options_and_syntax_errors(
        tmp_path, load_tool, tool, capsys):
    bad = tmp_path / 'bad.py'
    bad.write_text(BAD)
    extra = OTHER_TOOLS[tool]
    if tool.endswith('class_freq_cls'):
        argv = extra + [str(bad)]
    else:
        argv = [str(bad)] + extra
    module = load_tool(tool)
    with pytest.raises(SystemExit) as info:
        module.parse_args(argv + ['--cfg-options', 'max_epochs'])
    assert info.value.code == 2
    assert "error: --cfg-options 'max_epochs': expected KEY=VALUE" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    message = str(info.value)
    assert message.startswith(f'syntax error in config {bad}, line 2: ')


def _other_tool_argv(tool, config):
    extra = OTHER_TOOLS[tool]
    if tool.endswith('class_freq_cls'):
        return extra + [str(config)]
    return [str(config)] + extra


@pytest.mark.parametrize('tool', sorted(OTHER_TOOLS))
def test_other_tools_name_a_missing_config(tmp_path, load_tool, tool):
    missing = tmp_path / 'nope.py'
    with pytest.raises(SystemExit) as info:
        load_tool(tool).main(_other_tool_argv(tool, missing))
    assert str(info.value) == f'config file {missing} not found'
