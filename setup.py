"""Package setup read from settings.ini (nbdev 2)."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

setuptools.setup(
    name=cfg["repo"], version=cfg["version"], description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(), long_description_content_type="text/markdown",
    author=cfg["author"], author_email=cfg["author_email"], license="Apache-2.0",
    url=cfg["git_url"], packages=setuptools.find_packages(include=[cfg["lib_name"], cfg["lib_name"] + ".*"]),
    package_data={cfg["lib_name"]: ["assets/*.jsonl", "assets/*.md", "assets/lm_eval/*"]}, include_package_data=True,
    install_requires=cfg.get("requirements", "").split(), extras_require={"dev": cfg.get("dev_requirements", "").split()},
    python_requires=">=" + cfg["min_python"], zip_safe=False, keywords=cfg["keywords"].split(),
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: Apache Software License"],
    project_urls={"Source": cfg["git_url"]},
    entry_points={"console_scripts": cfg["console_scripts"].split(), "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
                  # Inspect finds `inspect eval c2_course_correct/c2_eval` through this (nbs/70_harnesses.ipynb)
                  "inspect_ai": [f"{cfg['lib_name']} = {cfg['lib_name']}.inspect_task"]},
)
