"""Train with dckd's models registered: python train.py -opt options/dckd_swinir_x4.yml"""
from dckd.train import main

if __name__ == '__main__':
    main()
